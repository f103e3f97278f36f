"""The Python virtual environment of dcplan's interop tests, as a repository.

tools/setup creates the venv at ${DCPLAN_VENV:-$HOME/.cache/dcplan/venv} with
PyTorch 2.13, safetensors, numpy and zstandard from PyPI. This rule exposes:

  @dcplan_venv//:python   a launcher that runs the venv's interpreter. A plain
                          symlink would not do: a venv interpreter finds its
                          pyvenv.cfg next to the path it was started from, and
                          inside runfiles that is not the venv.

When the venv is missing, the launcher fails with a message that says to run
tools/setup, so only the tests that need Python fail, and they say why.
"""

def _venv_dir(rctx):
    venv = rctx.os.environ.get("DCPLAN_VENV", "")
    if venv:
        return venv
    return rctx.os.environ.get("HOME", "/root") + "/.cache/dcplan/venv"

def _dcplan_venv_impl(rctx):
    venv = _venv_dir(rctx)
    python = venv + "/bin/python"
    if rctx.path(python).exists:
        launcher = "#!/bin/sh\nexec '%s' \"$@\"\n" % python
    else:
        launcher = ("#!/bin/sh\necho 'dcplan: no Python venv at %s " +
                    "(set DCPLAN_VENV or run tools/setup)' >&2\nexit 127\n") % venv
    rctx.file("python", launcher, executable = True)
    rctx.file("BUILD.bazel", """\
package(default_visibility = ["//visibility:public"])

exports_files(["python"])
""")

dcplan_venv = repository_rule(
    implementation = _dcplan_venv_impl,
    environ = ["DCPLAN_VENV", "HOME"],
    local = True,
)
