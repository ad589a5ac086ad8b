"""`physlm train CHAPTER` fills the run cache so that the chapter then only loads."""

from physlm.cli import main
from physlm.experiments.part3_3 import chapter_settings, run_setting
from physlm.scales import part3_3


def test_train_fills_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PHYSLM_RUNS", str(tmp_path))
    assert main(["train", "part3_3_capacity", "--scale", "smoke", "--workers", "1"]) == 0
    plan = part3_3("smoke")
    settings = [s for group in chapter_settings(plan).values() for s in group]
    assert "runs of part3_3_capacity" in capsys.readouterr().err
    assert all(run_setting(plan, s, progress=False).run.cached for s in settings)
    assert len(list(tmp_path.glob("*/DONE"))) == len(set(settings))


def test_train_unknown_chapter_is_a_usage_error(capsys):
    assert main(["train", "part9_nothing", "--scale", "smoke"]) == 2
    assert "part3_3_capacity" in capsys.readouterr().err
