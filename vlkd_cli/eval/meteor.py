"""METEOR 1.5 of the COCO caption evaluation, through the official jar shipped in pycocoevalcap 1.2.

Drives `pycocoevalcap/meteor/meteor-1.5.jar` exactly as `pycocoevalcap/meteor/meteor.py` (X. Chen; salaniz/
pycocoevalcap@ad63453) does — same command, same working directory, same line protocol — so the numbers are the
official ones (docs/evaluation.md, "Captioning (`eval-caption`)", METEOR):

    java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm

For every image one line ``SCORE ||| ref_1 ||| ... ||| ref_n ||| hyp`` is answered by one line of statistics;
then one line ``EVAL ||| stats_1 ||| ... ||| stats_I`` is answered by I per-image scores and one corpus score
(computed by the modified jar from the summed statistics, not the mean of the image scores).

Hardening over the official wrapper (which blocks forever on a stray line break, and whose process outlives errors):

* line-breaking characters (everything `str.splitlines` splits on: ``\\n \\r \\v \\f \\x1c-\\x1e \\x85 \\u2028
  \\u2029``) become spaces in hypotheses and references, and ``|||`` is removed from both (the official wrapper removes
  it from the hypothesis only; a reference containing it would be split into two references there);
  the hypothesis then gets the official ``replace("  ", " ")``;
* the statistics lines are written by a helper thread while the answers are read, all reads have a deadline
  (`timeout`), stderr is drained, and the process is always closed (killed if needed);
* Java missing, pycocoevalcap missing, or any failure of the jar gives ``score=None`` and a one-line reason instead of
  an exception.
"""

from __future__ import annotations

import importlib.util
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from vlkd_cli.eval.cider import check_images

K = TypeVar("K", bound=Hashable)

JAR_NAME = "meteor-1.5.jar"
_LINE_BREAKS = str.maketrans({c: " " for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"})
_STDERR_KEEP = 4000


@dataclass(frozen=True)
class MeteorResult(Generic[K]):
    """Outcome of `meteor`.

    Attributes:
        score: Corpus METEOR (a fraction), or None when it could not be computed.
        per_image: image id -> METEOR of that image (empty when `score` is None).
        reason: Why `score` is None (None when it is not).
    """

    score: float | None
    per_image: dict[K, float] = field(default_factory=dict)
    reason: str | None = None


def find_jar() -> Path | str:
    """Path of the METEOR 1.5 jar inside the installed pycocoevalcap, or the reason it is not usable.

    Returns:
        The jar path, or a one-line reason (str).
    """
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return "pycocoevalcap not installed"
    jar = Path(next(iter(spec.submodule_search_locations))) / "meteor" / JAR_NAME
    if not jar.is_file():
        return f"{JAR_NAME} not found at {jar}"
    return jar


def clean_reference(text: str) -> str:
    """A reference made safe for the line protocol: line breaks -> spaces, ``|||`` removed."""
    return text.translate(_LINE_BREAKS).replace("|||", "")


def clean_hypothesis(text: str) -> str:
    """A hypothesis made safe for the protocol, then the official ``replace("|||", "").replace("  ", " ")``."""
    return clean_reference(text).replace("  ", " ")


def score_line(refs: Sequence[str], hyp: str) -> str:
    """The ``SCORE`` request of one image.

    Args:
        refs: Its (tokenized) references.
        hyp: Its (tokenized) hypothesis.

    Returns:
        The request, without the line break.
    """
    return " ||| ".join(("SCORE", " ||| ".join(clean_reference(r) for r in refs), clean_hypothesis(hyp)))


class _JarSession:
    """One `java -jar meteor-1.5.jar ... -stdio` process with deadline-bounded line reads."""

    def __init__(self, java: str, jar: Path, deadline: float) -> None:
        cmd = [java, "-jar", "-Xmx2G", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
        self.deadline = deadline
        self.proc = subprocess.Popen(
            cmd, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.stderr = b""
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # end of output

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):  # type: ignore[union-attr]
            self.stderr = (self.stderr + chunk)[-_STDERR_KEEP:]

    def write_lines(self, lines: Sequence[str]) -> None:
        """Send lines (UTF-8, one flush); a closed pipe is left for `read_line` to report."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("".join(f"{line}\n" for line in lines).encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def read_line(self) -> str:
        """The next output line, stripped.

        Raises:
            RuntimeError: The jar ended or the deadline passed.
        """
        try:
            line = self.lines.get(timeout=max(0.0, self.deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError("METEOR jar timed out") from None
        if line is None:
            self.proc.wait(timeout=5)
            message = self.stderr.decode(errors="replace").strip().splitlines()
            detail = message[-1] if message else f"exit code {self.proc.returncode}"
            raise RuntimeError(f"METEOR jar stopped: {detail}")
        return line.decode(errors="replace").strip()

    def close(self, kill: bool = False) -> None:
        """Close stdin and end the process: at once if `kill`, else after at most 5 s for it to exit."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            if not kill:
                self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _run_jar(java: str, jar: Path, requests: list[str], timeout: float) -> tuple[list[float], float]:
    """Statistics for every request, then the EVAL round; returns (per-image scores, corpus score)."""
    session = _JarSession(java, jar, time.monotonic() + timeout)
    try:
        writer = threading.Thread(target=session.write_lines, args=(requests,), daemon=True)
        writer.start()
        stats = [session.read_line() for _ in requests]
        writer.join(timeout=max(0.0, session.deadline - time.monotonic()))
        session.write_lines([" ||| ".join(["EVAL", *stats])])
        scores = [float(session.read_line()) for _ in requests]
        corpus = float(session.read_line())
    except BaseException:
        session.close(kill=True)
        raise
    session.close()
    return scores, corpus


def meteor(
    refs_text: Mapping[K, Sequence[str]], hyps_text: Mapping[K, str], *, timeout: float = 1800.0
) -> MeteorResult[K]:
    """METEOR 1.5 of one hypothesis per image, by the official jar; None with a reason when it cannot run.

    Args:
        refs_text: image id -> tokenized references (as the official pipeline passes them: PTB-tokenized strings).
        hyps_text: image id -> tokenized hypothesis; same ids as `refs_text`.
        timeout: Seconds allowed for the whole run, JVM start-up included.

    Returns:
        The corpus score, per-image scores (in the order of `hyps_text`) and None, or None and the reason.

    Raises:
        ValueError: Ids differ, no image is given, or an image has no reference.
    """
    ids = check_images(refs_text, hyps_text, "METEOR")
    java = shutil.which("java")
    if java is None:
        return MeteorResult(None, {}, "java not found")
    jar = find_jar()
    if isinstance(jar, str):
        return MeteorResult(None, {}, jar)
    requests = [score_line(refs_text[i], hyps_text[i]) for i in ids]
    try:
        scores, corpus = _run_jar(java, jar, requests, timeout)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as err:
        return MeteorResult(None, {}, f"METEOR failed: {err}")
    return MeteorResult(corpus, dict(zip(ids, scores)), None)
