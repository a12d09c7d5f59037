"""Reading pprof profiles and saying what is in them: decoding (`decode`), top functions
(`top.entries`), summaries (`summary.summarize`), diffs between two captures (`diff.compare`),
flame-graph trees (`flame.tree`) and the self-contained HTML page (`page.render`).

Pure: bytes and values in, values and text out; no file, network or clock. The CLI commands
(`kprof show`, `kprof diff`, `kprof ls`, `kprof open`) and the capture path
(`execution.summaries`) call it.
"""

from kprof_lib.profiles.decoding import ProfileError, decode
from kprof_lib.profiles.model import Profile, SampleType

__all__ = ["Profile", "ProfileError", "SampleType", "decode"]
