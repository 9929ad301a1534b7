"""The Hail (Spark) GWAS engine: same regression as an independent OLS, run through the Hail environment."""

from __future__ import annotations

import os

import pytest
from hail_checks import ToyPlink, assert_engines_agree, assert_equals_ols, write_toy_plink

from biolatent.discover.genetics.hail_engine import hail_available, hail_gwas

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> ToyPlink:
    return write_toy_plink(tmp_path_factory.mktemp("plink"))


def test_hail_engine_equals_ols(toy):
    reason = hail_available()
    if reason:
        pytest.skip(reason)
    table = hail_gwas(toy.prefix, toy.phenotypes, toy.covariates)
    assert_equals_ols(table, toy)
    assert table.attrs["report"]["spark"]["master"] == os.environ.get("BIOLATENT_HAIL_MASTER", "local[2]")


def test_both_engines_give_the_same_gwas_after_qc_and_genetic_pcs(tmp_path):
    """Same QC, same PCs (up to sign), same betas and p-values, through ``gwas_scan`` with either engine."""
    reason = hail_available()
    if reason:
        pytest.skip(reason)
    info = assert_engines_agree(tmp_path)
    if "BIOLATENT_HAIL_MASTER" not in os.environ:
        assert info["spark"]["executors"] == 0  # local mode: the driver computes
