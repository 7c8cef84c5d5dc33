import re

from eval.bench.data import main


def test_renderer_bench_prints_pages_per_second(capsys):
    assert main(["--pages", "2", "--long-side", "384", "--languages", "en"]) == 0
    assert re.search(r"1 core: [\d.]+ pages/s rendered", capsys.readouterr().out)
