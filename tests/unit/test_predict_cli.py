"""`crm predict fit`: any store's CSV history in, each model's parameters and the holdout comparison out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crm_local.cli import main

from tests.unit.test_btyd_cdnow import sample_history


@pytest.fixture(scope="module")
def cdnow_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.csv"
    lines = ["customer_id,date,amount"] + [f"c{customer},{day.isoformat()},{amount}"
                                            for customer, orders in sample_history().items()
                                            for day, amount in orders]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_with_a_holdout_prints_every_model_and_the_comparison(cdnow_csv: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["predict", "fit", "--transactions", str(cdnow_csv), "--calibration-end", "1997-09-30",
                 "--holdout-end", "1998-06-30", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (report["customers"], report["repeat_buyers"], report["time_unit"]) == (2357, 946, "weeks")
    assert set(report["bgnbd"]) == set(report["mbgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert report["bgnbd"]["r"] == pytest.approx(0.243, rel=0.01)
    assert report["bgnbd"]["log_likelihood"] == pytest.approx(-9582.4, abs=0.1)
    assert {"p", "q", "gamma"} <= set(report["gamma_gamma"])
    assert report["gamma_gamma"]["q"] == pytest.approx(3.74, rel=0.01)
    holdout = report["holdout"]
    assert (holdout["actual_repeat_purchases"], holdout["length"]) == (1882, 39.0)
    for model in ("bgnbd", "mbgnbd"):
        assert 1500 < holdout[model]["expected_repeat_purchases"] < 2300
        assert 0.55 < holdout[model]["correlation"] < 0.7


def test_without_dates_it_fits_to_the_last_transaction_and_reads_as_text(cdnow_csv: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "fit", "--transactions", str(cdnow_csv), "--time-unit", "days"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2357 customers (1139 repeat buyers) to 1998-06-30; time in days"
    assert [line.split(":")[0] for line in out[1:]] == ["bgnbd", "mbgnbd", "gamma_gamma"]


@pytest.mark.parametrize(("content", "says"), [
    ("id,date,amount\n1,1997-01-01,3\n", "line 1: the header must be customer_id,date,amount"),
    ("customer_id,date,amount\n1,1997-01-01\n", "line 2: 2 columns, expected 3"),
    ("customer_id,date,amount\n1,1997-01-01,3\n2,1997-13-01,4\n", "line 3, column date: '1997-13-01' is not an ISO"),
    ("customer_id,date,amount\n1,1997-01-01,3\n\n2,1997-01-02,abc\n", "line 4, column amount: 'abc' is not a number"),
    ("customer_id,date,amount\n1,1997-01-01,-3\n", "line 2, column amount: '-3' must be a non-negative number"),
    ("customer_id,date,amount\n,1997-01-01,3\n", "line 2, column customer_id: empty"),
    ("customer_id,date,amount\n", "no transactions after the header"),
    ("customer_id,date,amount\n1,1997-01-01,3\n2,1997-01-02,3\n", "no customer bought twice by 1997-01-02"),
])
def test_a_bad_file_exits_2_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                               says: str) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(content)
    assert main(["predict", "fit", "--transactions", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and says in captured.err


@pytest.mark.parametrize(("dates", "says"), [
    (["--holdout-end", "1998-06-30"], "--holdout-end needs --calibration-end"),
    (["--calibration-end", "1997-09-30", "--holdout-end", "1997-09-01"], "the holdout must end after"),
])
def test_inconsistent_dates_exit_2(cdnow_csv: Path, capsys: pytest.CaptureFixture[str], dates: list[str],
                                   says: str) -> None:
    assert main(["predict", "fit", "--transactions", str(cdnow_csv), *dates]) == 2
    assert says in capsys.readouterr().err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", "fit", "--transactions", str(tmp_path / "none.csv")]) == 2
    assert "none.csv" in capsys.readouterr().err
