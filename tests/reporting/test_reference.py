"""The published classification that policies are compared with: figures as printed, shares derived
from them, and a citation whose quoted passage carries those very figures."""

import pytest
import yaml

from scoring.common.errors import PipelineError
from scoring.reporting.reference import REFERENCE, load_reference


def test_the_reference_is_cited_and_its_figures_are_the_quoted_ones():
    ref = load_reference()
    for entry in [ref["reference"], *ref["also_published"]]:
        assert (
            entry["verified"]
            and entry["source"]["url"].startswith("http")
            and entry["source"]["url"] in entry["citation"]
        )
        quote = entry["source"]["quote"]
        for tier, figure in entry[
            "printed"
        ].items():  # each figure appears in the passage, next to its class
            printed = f"{figure}户" if entry["printed_as"] == "counts" else f"{figure:.2f}%"
            assert f"({tier}类)" in quote and printed in quote, (tier, printed)
        assert abs(sum(entry["shares"].values()) - 1) < 1e-5
    dandong = ref["reference"]
    total = sum(dandong["printed"].values())
    assert total == 47554 and dandong["shares"]["A"] == round(31107 / total, 6)
    # the brief's example figures, to one decimal, are Dandong's
    assert [round(100 * dandong["shares"][t], 1) for t in "ABCD"] == [65.4, 25.3, 7.7, 1.5]


def test_figures_that_do_not_cover_all_four_classes_are_refused(tmp_path):
    doc = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))
    del doc["reference"]["counts"]["D"]
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PipelineError, match="must cover exactly A, B, C and D"):
        load_reference(path)


def test_a_reference_without_a_source_says_so(tmp_path):
    doc = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))
    doc["reference"].update(verified=False, source=None)
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    assert load_reference(path)["reference"]["citation"].startswith("UNVERIFIED")
