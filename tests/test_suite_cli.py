"""`kseries run --suite` with bad input, and two fixes tried as a new user would.

Each bad input is one line on stderr and exit 1, before any guest starts. The
suite's test names are the base's (debian:6.12 from the shared cache).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kseries.base import bases
from kseries.cli import main
from kseries.cli.boundary import PIPE_CLOSED, run_command

ROOT = Path(__file__).resolve().parents[1]


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1 and "Traceback" not in err, err
    assert lines and lines[-1].startswith("kseries: error: "), err
    assert [ln for ln in lines if ln.startswith("kseries:")] == [lines[-1]], err
    return lines[-1].removeprefix("kseries: error: ")


@pytest.fixture
def base_612(debian_612: bases.Base) -> bases.Base:
    return debian_612


def suite_argv(tmp_path: Path, *more: str) -> list[str]:
    # --kernel: the suite's names are checked against the base before any kernel is read
    return ["run", "--kernel", str(tmp_path / "no-bzImage"), "-o", str(tmp_path / "res"),
            *more]


def test_an_unknown_suite_lists_the_names(base_612: bases.Base, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(capsys, suite_argv(tmp_path, "--suite", "nightly"))
    assert line.startswith("--suite 'nightly': neither a suite nor a test the base builds: "
                           "suites: all, smoke, svm; tests: cpuid_test, ")
    assert not (tmp_path / "res").exists()


def test_a_test_the_base_does_not_build(base_612: bases.Base, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # kvm_buslock_test is the series' own: the base does not build it.
    line = one_error(capsys, suite_argv(tmp_path, "--suite", "svm_vmcall_test,kvm_buslock_test"))
    assert line.startswith("--suite 'kvm_buslock_test': neither a suite nor a test the base")
    hosts = tmp_path / "hosts.toml"
    text = (ROOT / "kselftest" / "hosts.toml").read_text()
    hosts.write_text(text.replace('[suites]\n', '[suites]\nmine = ["smm_test", "nope_test"]\n'))
    line = one_error(capsys, suite_argv(tmp_path, "--hosts", str(hosts), "--suite", "mine"))
    assert line.startswith(f"suite mine ({hosts}): the base does not build nope_test: name "
                           "tests of the base's KVM selftest makefile (")


def test_repeat_must_be_positive_and_goes_with_a_suite(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(capsys, suite_argv(tmp_path, "--suite", "all", "--repeat", "0"))
    assert line == "--repeat 0: a suite runs at least once: --repeat 1 or more"
    line = one_error(capsys, suite_argv(tmp_path, "--repeat", "3"))
    assert line.startswith("--repeat, --reruns and --shards go with --suite")
    line = one_error(capsys, suite_argv(tmp_path, "--reruns", "1"))
    assert line.startswith("--repeat, --reruns and --shards go with --suite")
    line = one_error(capsys, suite_argv(tmp_path, "--suite", "all", "--reruns", "-1"))
    assert line == ("--reruns -1: a number of times, 0 or more: --reruns 0 judges a failure "
                    "as it came")


def test_a_suite_named_twice_or_with_its_tests_runs_each_test_once(base_612: bases.Base) -> None:
    from kseries.build import suitetests
    from kseries.cli.suite import select
    from kseries.run import suite

    built = suitetests.built_by_base(base_612)
    assert len(built) > 80 and "svm_vmcall_test" in built and "kvm_buslock_test" not in built
    config = suite.load_config(ROOT / "kselftest" / "hosts.toml", ("smm_test",))
    name, tests = select(config, "svm,smoke,smm_test", built)
    assert name == "svm,smoke,smm_test" and tests.count("smm_test") == 1
    assert tests == sorted(tests, key=built.index)  # in the base's order
    assert select(config, "all", built)[1] == built


def test_lava_refuses_a_kernel_that_is_not_a_bzimage(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "bzImage"
    junk.write_bytes(b"\x7fELF" + bytes(4096))
    line = one_error(capsys, ["run", "--lava", "--kernel", str(junk), "--test",
                              f"smm_test={sys.executable}", "-o", str(tmp_path / "res")])
    assert line.startswith(f"--kernel {junk}: not a bzImage")
    assert not (tmp_path / "res" / "lava").exists(), "a job was written"


def test_a_closed_pipe_ends_kseries_quietly(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`kseries render ... | head -1`: the reader went away; that is its choice."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone, as `head -1` is after its line
    out = os.fdopen(write, "w")
    monkeypatch.setattr(sys, "stdout", out)
    args = argparse.Namespace(command="render", func=lambda a: print("patch\n" * 50000) or 0)
    code = run_command(args)
    monkeypatch.undo()
    assert code == PIPE_CLOSED == 141
    assert capsys.readouterr().err == ""
    out.close()


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    def fails(a: argparse.Namespace) -> int:
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a command kseries feeds died

    code = run_command(argparse.Namespace(command="check", func=fails))
    assert code == 1
    assert "kseries: error: check: failed: Broken pipe [EPIPE]" in capsys.readouterr().err


def test_the_real_program_in_a_pipe() -> None:
    """The whole program, its output read by a reader that stops after one line."""
    code = ("import argparse, sys\nfrom kseries.cli.boundary import run_command\n"
            "sys.exit(run_command(argparse.Namespace(command='render', func=lambda a: "
            "[print(f'line {i}', flush=True) for i in range(100000)] and 0)))\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT / "tool")})
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline() == "line 0\n"
    child.stdout.close()  # as head -1 does once it has its line
    assert child.wait(timeout=60) == PIPE_CLOSED
    assert child.stderr.read() == ""


def test_make_run_compares_the_svm_suite_and_submit_counts_it(tmp_path: Path) -> None:
    """`make run` (kseries pipeline): the run stage runs the hosts, then the suite, and
    submit is given both results directories."""
    from kseries.cli import pipeline

    args = argparse.Namespace(base="debian:6.12", series="v2", output=tmp_path,
                              stages="render,check,build,run,submit")
    run = next(s for s in pipeline.stages(args) if s.name == "run")
    assert run.argv[1] == ("run", "--base", "debian:6.12", "--series", "v2", "--suite",
                           pipeline.MAKE_RUN_SUITE, "-o", str(tmp_path / "suite"))
    submit = next(s for s in pipeline.stages(args) if s.name == "submit")
    assert submit.argv[0][-4:] == ("--results", str(tmp_path / "results"),
                                   "--results", str(tmp_path / "suite"))
    args.stages = "submit"  # neither ran: no results to give
    assert "--results" not in next(s for s in pipeline.stages(args)
                                   if s.name == "submit").argv[0]
