import subprocess
import sys


def run_cli(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "tether", *args], capture_output=True, text=True, check=check
    )


def test_top_level_help_lists_verbs():
    out = run_cli("--help").stdout
    assert "models" in out


def test_top_level_help_does_not_import_torch():
    code = (
        "import sys\nfrom tether.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False"


SPEW = """
import argparse, sys
import tether.cli as cli
build = cli.build_parser
def with_spew():
    parser = build()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    verbs.add_parser("spew").set_defaults(handler=lambda args: [print("x" * 99) for _ in range(100_000)])
    return parser
cli.build_parser = with_spew
sys.exit(cli.main(["spew"]))
"""


def test_a_reader_that_goes_away_ends_the_command_quietly():
    # `tether ... | head -1`: 10 MB of output into a pipe whose reader stops after one line
    process = subprocess.Popen(
        [sys.executable, "-c", SPEW], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().startswith("x")
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait() == 0
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error(tmp_path):
    code = SPEW.replace('print("x" * 99) for _ in range(100_000)', "(_ for _ in ()).throw(BrokenPipeError())")
    with open(tmp_path / "out.txt", "w") as out:  # stdout readable to the end: the pipe was another one
        result = subprocess.run([sys.executable, "-c", code], stdout=out, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 1 and "BrokenPipeError" in result.stderr


def test_every_verb_has_help():
    for verb in (["models"], ["models", "info"], ["models", "tiny"]):
        assert "usage: tether" in run_cli(*verb, "--help").stdout


def test_user_error_is_one_line_without_traceback(tmp_path):
    result = run_cli("models", "info", str(tmp_path / "missing"), check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "tether: error:" in result.stderr and "not a local checkpoint folder" in result.stderr


def test_unknown_family_is_one_line_naming_families_and_remote_code(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "blip-2"}')
    result = run_cli("models", "info", str(tmp_path), check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "supported: gemma3, idefics3" in result.stderr and "--trust-remote-code" in result.stderr


def test_tiny_then_info(tmp_path):
    run_cli("models", "tiny", "--arch", "qwen2_vl", "--out", str(tmp_path / "q"), "--words", "red square")
    out = run_cli("models", "info", str(tmp_path / "q")).stdout
    assert "qwen2_vl" in out and "<|image_pad|>" in out
    # a 64x40 image keeps its aspect: an 8x4 grid of 8-pixel patches, 2x2 merged into 8 tokens
    out = run_cli("models", "info", str(tmp_path / "q"), "--image-size", "64x40").stdout
    assert "family: qwen2_vl" in out and "visual tokens 64x40: 8" in out
    assert "projector: model.visual.merger" in out and "template: '<|im_start|>user" in out
