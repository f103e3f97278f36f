"""Repositories dcplan needs, all local. Call dcplan_dependencies() from a WORKSPACE.

dcplan builds fully offline: Bazel's own downloads are replaced by stand-ins
kept in third_party/stand_ins, and every library comes from Debian packages
(see tools/setup). A consumer workspace declares dcplan with
local_repository(name = "dcplan", path = P) and calls
dcplan_dependencies(dcplan_path = P).
"""

load("//third_party:venv.bzl", "dcplan_venv")

def _maybe(rule, name, **kwargs):
    if name not in native.existing_rules():
        rule(name = name, **kwargs)

def _build_file(name):
    # Label() resolves relative to this .bzl's repository: the main workspace
    # here, @dcplan in a consumer.
    return str(Label("//third_party:" + name))

def dcplan_dependencies(dcplan_path = "."):
    """Declares the offline stand-ins and the Debian system libraries.

    Args:
      dcplan_path: where dcplan's sources are, relative to the calling
        workspace's root (or absolute).
    """
    stand_ins = dcplan_path + "/third_party/stand_ins/"
    _maybe(native.local_repository, "rules_cc", path = stand_ins + "rules_cc")
    _maybe(native.local_repository, "rules_java", path = stand_ins + "rules_java")
    _maybe(native.local_repository, "remote_coverage_tools", path = stand_ins + "remote_coverage_tools")
    _maybe(native.local_repository, "platforms", path = "/usr/share/bazel/platforms")

    libs = {
        "com_google_absl": ("/usr", "absl.BUILD"),
        "com_google_googletest": ("/usr", "gtest.BUILD"),
        "rapidcheck": ("/usr", "rapidcheck.BUILD"),
        "com_google_benchmark": ("/usr", "benchmark.BUILD"),
        "nlohmann_json": ("/usr", "nlohmann_json.BUILD"),
        "libtorch": ("/usr", "libtorch.BUILD"),
        "gloo": ("/usr", "gloo.BUILD"),
        "xxhash": ("/usr", "xxhash.BUILD"),
        "zstd": ("/usr", "zstd.BUILD"),
    }
    for name, (path, build) in libs.items():
        _maybe(native.new_local_repository, name, path = path, build_file = _build_file(build))

    # PyTorch 2.13 and friends for the interop tests (tools/setup makes it).
    _maybe(dcplan_venv, "dcplan_venv")
