"""Pairing two audits of the same images: counts, the changed images, the headline's source."""

import csv
import io

import pytest

from robust_compress.audit.compare import (
    changed_images,
    changes_csv,
    compare_audits,
    comparison_markdown,
    headline_key,
)

DENSE = {"clean_mask": "111101", "robust_mask": "110100"}
FINAL = {"clean_mask": "101111", "robust_mask": "100110"}


def test_counts_split_the_images_and_the_test_sees_only_discordant_ones():
    c = compare_audits(DENSE, FINAL)
    assert (c["n"], c["both"], c["only_reference"], c["only_other"], c["neither"]) == (
        6,
        2,
        1,
        1,
        2,
    )
    assert c["p_value"] == 1.0 and not c["significant"]
    many = compare_audits({"robust_mask": "1" * 20}, {"robust_mask": "0" * 20})
    assert many["significant"] and many["p_value"] == pytest.approx(2 * 0.5**20)


def test_changed_images_lists_each_flip_with_its_label_and_clean_flags():
    rows = changed_images(DENSE, FINAL, labels=[3, 1, 4, 1, 5, 9])
    assert [(r["index"], r["label"], r["change"]) for r in rows] == [
        (1, 1, "broken by compression"),
        (4, 5, "robust only after"),
    ]
    assert rows[0]["final_clean"] == 0 and rows[1]["dense_clean"] == 0
    parsed = list(csv.DictReader(io.StringIO(changes_csv(rows))))
    assert [int(r["index"]) for r in parsed] == [1, 4]


def test_headline_is_the_deployed_file_when_audited():
    assert headline_key({"final": {}, "int8_onnx": {}, "dense": {}}) == "int8_onnx"
    assert headline_key({"final": {}, "dense": {}}) == "final"
    assert headline_key({"markdown": "x"}) is None


def test_markdown_says_whether_the_difference_can_be_chance():
    text = "\n".join(comparison_markdown(compare_audits(DENSE, FINAL), "the final model"))
    assert "could be chance" in text and "| dense only (broken by compression) | 1 |" in text


def test_masks_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        compare_audits({"robust_mask": "10"}, {"robust_mask": "1"})
