"""Running code in a fresh interpreter: crashes, hangs and process-wide settings are a
failed test there, never a failed run. Shared by test_hardening.py and test_threads.py."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import fastloss as fl


_HARNESS = r'''
import sys, traceback
import numpy as np
import fastloss as fl

def expect(label, fn, exc=(TypeError, ValueError), text=None):
    """Call fn; print one line; exit code 3 on the wrong outcome."""
    try:
        fn()
    except exc as e:
        if text is not None and text not in str(e):
            print(f"WRONG-TEXT {label}: {type(e).__name__}: {e}", flush=True)
            sys.exit(3)
        print(f"RAISED {label}: {type(e).__name__}: {e}", flush=True)
        return
    except BaseException as e:
        print(f"WRONG-EXCEPTION {label}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
        sys.exit(3)
    print(f"NO-ERROR {label}", flush=True)
    sys.exit(3)

def same(label, a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
        print(f"DIFFERENT {label}: {a!r} vs {b!r}", flush=True)
        sys.exit(3)
    print(f"SAME {label}", flush=True)
'''


def run_isolated(code, env=None, timeout=300):
    """Run `code` (after the harness above) in a fresh interpreter; return (rc, output).

    The child imports the very fastloss this process tests (an installed, editable, serial or
    sanitizer build alike): it runs outside the source tree, whose uncompiled fastloss/ would
    otherwise shadow the installed one, with that package's parent directory first on its path.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    full_env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p])
    code = _HARNESS + textwrap.dedent(code) + (
        f"\nassert fl.__file__ == {os.path.abspath(fl.__file__)!r}, fl.__file__\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=timeout, env=full_env, cwd=_NEUTRAL_DIR)
    return r.returncode, r.stdout + r.stderr


_NEUTRAL_DIR = tempfile.mkdtemp(prefix="fastloss-isolated-")       # never a source tree
atexit.register(shutil.rmtree, _NEUTRAL_DIR, True)
