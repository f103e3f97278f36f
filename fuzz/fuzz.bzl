"""dcplan_fuzz_test: one fuzz target, two builds.

Under --config=fuzz (which sets --define=dcplan_fuzz=1) the target links with
-fsanitize=fuzzer: bazel-bin/fuzz/<name> is a libFuzzer binary (tools/fuzz
runs it). In every other build it links fuzz/replay_main.cc instead and is a
plain test that replays the committed corpus fuzz/corpus/<name minus
_fuzzer>/ through LLVMFuzzerTestOneInput. `bazel test --config=fuzz` runs
the same corpus through libFuzzer's own main, which executes the files given
as arguments once each.
"""

def fuzz_cc_linkopts(fuzzing_only = []):
    """Link options for any C++ binary of this package.

    Under --config=fuzz Bazel links with the C driver (clang-14, not
    clang++-14), which leaves out UBSan's C++ runtime (vptr and function
    checks): it has to be asked for.
    """
    return select({
        "//fuzz:fuzzing": ["-fsanitize-link-c++-runtime"] + fuzzing_only,
        "//conditions:default": [],
    })

def dcplan_fuzz_test(name, srcs, deps, size = "small", **kwargs):
    if not name.endswith("_fuzzer"):
        fail("fuzz targets are named <something>_fuzzer")
    corpus = name + "_corpus"
    native.filegroup(
        name = corpus,
        srcs = native.glob(["corpus/%s/**" % name[:-len("_fuzzer")]], allow_empty = False),
    )
    native.cc_test(
        name = name,
        srcs = srcs,
        size = size,
        args = ["$(rootpaths :%s)" % corpus],
        data = [":" + corpus],
        # Static: the engine's shared libraries do not record their Abseil
        # dependencies (see third_party/absl.BUILD).
        linkstatic = True,
        linkopts = fuzz_cc_linkopts(["-fsanitize=fuzzer"]),
        deps = deps + select({
            "//fuzz:fuzzing": [],
            "//conditions:default": ["//fuzz:replay_main"],
        }),
        **kwargs
    )
