"""The ``callrec`` command: the top layer, and the one place that wires the services together.

Below it: the services (ari_app, uploader, archive), which never import each other, then the S3
layer (callrec/s3) and the contract (callrec). ``make lint`` holds the layers to that.
"""
