"""Make callrec's prompts in every format Asterisk plays, for each language.

    python sounds/make_prompts.py            # writes sounds/<lang>/callrec/<prompt>.<format>

Japanese uses pyopenjtalk-plus (offline, ships its dictionary and voice: ``pip install
'.[prompts]'``); English uses Debian's espeak-ng. sox converts to 8 kHz wav/ulaw/alaw and 16 kHz
sln16/g722 (Asterisk picks the cheapest format for the call's codec). To use studio recordings
instead, put a 16-bit mono WAV per prompt under ``sounds/studio/<lang>/<prompt>.wav`` and run this
script: it converts those instead of synthesising.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPTS: dict[str, dict[str, str]] = {
    "ja": {
        "notice": "この通話は応対品質向上のため録音させていただきます。",
        "unavailable": ("申し訳ございません。ただいま電話をお受けできません。"
                        "後ほどおかけ直しください。"),
        # The agent's hot-key warning (it repeats that the call is recorded: played only
        # through the proof gate, ari_app/announce.py) and the closing before the agent ends it.
        "warning": ("この通話は録音されています。このようなご発言が続く場合は、"
                    "通話を終了させていただきます。"),
        "closing": ("誠に申し訳ございませんが、これ以上のご対応はいたしかねますので、"
                    "これで通話を終了させていただきます。"),
        # A marked caller whose treatment is refusal (callrec/s3/marks.py).
        "refused": "申し訳ございませんが、このお電話はお受けいたしかねます。失礼いたします。",
        # Payment pauses (ari_app/pause.py): "resumed" says the call is recorded again, so it
        # is played only through the proof gate, once the recording is proven to record.
        "paused": "カード情報をお伺いするため、ただいま録音を一時停止しております。",
        "resumed": "録音を再開しました。この通話は録音されています。",
    },
    "en": {
        "notice": "This call is recorded to improve our service.",
        "unavailable": "We are sorry, we cannot take your call right now. Please call again later.",
        "warning": ("This call is being recorded. If this continues, we will end the call."),
        "closing": "We are unable to continue this call, and will end it now. Goodbye.",
        "refused": "We are sorry, we cannot take this call. Goodbye.",
        "paused": "Recording is now paused while we take your card details.",
        "resumed": "Recording has resumed. This call is recorded.",
    },
}
# (extension, sox output options): what Asterisk's format modules read.
FORMATS = (
    ("wav", ["-r", "8000", "-c", "1", "-e", "signed-integer", "-b", "16"]),
    ("ulaw", ["-t", "ul", "-r", "8000", "-c", "1"]),
    ("alaw", ["-t", "al", "-r", "8000", "-c", "1"]),
    ("sln16", ["-t", "raw", "-r", "16000", "-c", "1", "-e", "signed-integer", "-b", "16"]),
)


def synthesise_ja(text: str, out: Path) -> None:
    import numpy as np
    import pyopenjtalk

    samples, rate = pyopenjtalk.tts(text)
    pcm = np.clip(samples, -32768, 32767).astype("<i2")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())


def synthesise_en(text: str, out: Path) -> None:
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: apt-get install espeak-ng")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(out), text], check=True)


def source_wav(lang: str, prompt: str, text: str, work: Path) -> Path:
    studio = HERE / "studio" / lang / f"{prompt}.wav"
    if studio.exists():
        return studio
    out = work / f"{lang}-{prompt}.wav"
    (synthesise_ja if lang == "ja" else synthesise_en)(text, out)
    return out


def convert(source: Path, target_base: Path) -> None:
    for ext, options in FORMATS:
        # Normalise to -3 dBFS and pad 100 ms of silence at the end: some phones clip the tail.
        subprocess.run(["sox", str(source), *options, f"{target_base}.{ext}", "gain", "-n", "-3",
                        "pad", "0", "0.1"], check=True)
    g722 = target_base.with_suffix(".g722")
    g722.unlink(missing_ok=True)  # sox has no G.722 encoder; sln16 serves 16 kHz calls


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        for lang, prompts in PROMPTS.items():
            target = HERE / lang / "callrec"
            target.mkdir(parents=True, exist_ok=True)
            for prompt, text in prompts.items():
                convert(source_wav(lang, prompt, text, Path(tmp)), target / prompt)
                print(f"{lang}/callrec/{prompt}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
