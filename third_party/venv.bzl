"""The Python virtual environment of dcplan, as a repository: PyTorch 2.13's
interpreter for the interop tests, and the LibTorch 2.13 C++ library inside
its wheel, which is dcplan's default LibTorch.

tools/setup creates the venv at ${DCPLAN_VENV:-$HOME/.cache/dcplan/venv} with
PyTorch 2.13, safetensors, numpy and zstandard from PyPI. This rule exposes:

  @dcplan_venv//:python   a launcher that runs the venv's interpreter. A plain
                          symlink would not do: a venv interpreter finds its
                          pyvenv.cfg next to the path it was started from, and
                          inside runfiles that is not the venv.
  @dcplan_venv//:torch    LibTorch 2.13 (CPU) from site-packages/torch:
                          include/ and lib/ (libtorch, libtorch_cpu, libc10),
                          with an rpath to that lib/ directory, so binaries
                          run without LD_LIBRARY_PATH.
  @dcplan_venv//:c10d     :torch plus c10d's Gloo process group. The wheel has
                          no Gloo headers; Debian's libgloo-dev provides them
                          (dcplan only constructs a ProcessGroupGloo and calls
                          it through virtual methods; the Gloo code that runs
                          is the copy inside libtorch_cpu).

The targets normally used are @libtorch//:torch and @libtorch//:c10d
(third_party/libtorch.BUILD), which pick these or Debian's LibTorch 1.13
(--config=torch1).

When the venv is missing, the launcher fails with a message that says to run
tools/setup, and so does building anything against :torch, so only what needs
the venv fails, and it says why.
"""

def _venv_dir(rctx):
    venv = rctx.os.environ.get("DCPLAN_VENV", "")
    if venv:
        return venv
    return rctx.os.environ.get("HOME", "/root") + "/.cache/dcplan/venv"

def _torch_package_dir(rctx, venv):
    """site-packages/torch of the venv (any python3.X), or None."""
    lib = rctx.path(venv + "/lib")
    if not lib.exists:
        return None
    for python_dir in lib.readdir():
        torch = rctx.path(str(python_dir) + "/site-packages/torch")
        if rctx.path(str(torch) + "/include/torch/headeronly/version.h").exists and \
           rctx.path(str(torch) + "/lib/libtorch_cpu.so").exists:
            return str(torch)
    return None

_PYTHON_BUILD = """\
package(default_visibility = ["//visibility:public"])

exports_files(["python"])
"""

# Headers of the LibTorch C++ API (and what they include); the Python
# bindings, MKL-DNN, Kineto and the like are left out.
_TORCH_BUILD = """
cc_library(
    name = "torch",
    hdrs = glob(
        ["include/**/*.h", "include/**/*.hpp", "include/**/*.cuh"],
        exclude = [
            "include/pybind11/**",
            "include/torch/csrc/api/include/torch/python/**",
            "include/dnnl*",
            "include/oneapi/**",
            "include/kineto/**",
            "include/tensorpipe/**",
        ],
    ),
    includes = ["include", "include/torch/csrc/api/include"],
    # Which LibTorch the sources were compiled against; checked against
    # TORCH_VERSION_MAJOR in api/internal/torch_compat.h, so that a header
    # of Debian's LibTorch 1.13 (in /usr/include) can never stand in for one
    # of 2.13 unnoticed.
    defines = ["DCPLAN_LIBTORCH_MAJOR=2"],
    linkopts = [
        "-L{lib}",
        "-Wl,-rpath,{lib}",
        "-ltorch",
        "-ltorch_cpu",
        "-lc10",
        "-pthread",
    ],
)

cc_library(
    name = "c10d",
    defines = ["USE_C10D_GLOO"],
    deps = [":torch", "@gloo//:gloo"],
)
"""

# Without a venv: building against LibTorch 2.13 fails, and says what to do.
_NO_TORCH_BUILD = """
genrule(
    name = "no_libtorch",
    outs = ["no_libtorch.h"],
    cmd = "echo 'dcplan: no LibTorch 2.13 in a venv at {venv} (run tools/setup, set DCPLAN_VENV, or build with --config=torch1 for Debian LibTorch 1.13)' >&2; exit 1",
)

cc_library(name = "torch", hdrs = [":no_libtorch.h"])

cc_library(name = "c10d", deps = [":torch"])
"""

def _dcplan_venv_impl(rctx):
    venv = _venv_dir(rctx)
    python = venv + "/bin/python"
    if rctx.path(python).exists:
        launcher = "#!/bin/sh\nexec '%s' \"$@\"\n" % python
    else:
        launcher = ("#!/bin/sh\necho 'dcplan: no Python venv at %s " +
                    "(set DCPLAN_VENV or run tools/setup)' >&2\nexit 127\n") % venv
    rctx.file("python", launcher, executable = True)

    torch = _torch_package_dir(rctx, venv)
    if torch:
        rctx.symlink(torch + "/include", "include")
        torch_build = _TORCH_BUILD.format(lib = torch + "/lib")
    else:
        torch_build = _NO_TORCH_BUILD.format(venv = venv)
    rctx.file("BUILD.bazel", _PYTHON_BUILD + torch_build)

dcplan_venv = repository_rule(
    implementation = _dcplan_venv_impl,
    environ = ["DCPLAN_VENV", "HOME"],
    local = True,
)
