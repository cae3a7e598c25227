"""The archive's web door (aiohttp, server-rendered, no JavaScript): ``app.py`` what every page
shares, ``middleware.py`` the guards, ``pages.py`` the UI, ``api.py`` the JSON API,
``evidence.py`` the evidence pages, ``server.py`` the server and its lifecycle. It reaches the
catalog and the bucket only through the domain service (archive/service.py), which audits."""
