"""The audit's statistics against scipy's (a dependency of ART) on random and edge cases."""

import random

import pytest

from robust_compress.audit.stats import (
    binom_cdf,
    clopper_pearson,
    holm,
    mcnemar,
    mcnemar_p,
    sign_test,
    wilson,
)

scipy_stats = pytest.importorskip("scipy.stats")


def test_binomial_cdf_matches_scipy():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 20_000)
        k, p = rng.randint(0, n), rng.random()
        assert binom_cdf(k, n, p) == pytest.approx(scipy_stats.binom.cdf(k, n, p), abs=1e-9)


@pytest.mark.parametrize("k,n", [(0, 10), (5, 10), (10, 10), (990, 1000), (99_990, 100_000)])
def test_clopper_pearson_matches_the_beta_quantiles(k, n):
    alpha = 0.001
    low = scipy_stats.beta.ppf(alpha, k, n - k + 1) if k else 0.0
    high = scipy_stats.beta.ppf(1 - alpha, k + 1, n - k) if k < n else 1.0
    assert clopper_pearson(k, n, alpha) == pytest.approx(low, abs=1e-8)
    assert clopper_pearson(k, n, alpha, "upper") == pytest.approx(high, abs=1e-8)


def test_wilson_interval_brackets_the_proportion_and_narrows_with_n():
    low, high = wilson(750, 1000)
    assert low == pytest.approx(0.72224, abs=1e-4) and high == pytest.approx(0.77585, abs=1e-4)
    small = wilson(75, 100)
    assert small[0] < low < 0.75 < high < small[1]
    assert wilson(0, 0) == (0.0, 1.0) and wilson(0, 50)[0] == 0.0 and wilson(50, 50)[1] == 1.0


def test_mcnemar_counts_discordant_images_and_matches_the_exact_binomial_test():
    a = "1" * 40 + "1" * 12 + "0" * 3 + "0" * 45
    b = "1" * 40 + "0" * 12 + "1" * 3 + "0" * 45
    paired = mcnemar(a, b)
    assert (paired.n, paired.only_a, paired.only_b, paired.both) == (100, 12, 3, 40)
    assert paired.p_value == pytest.approx(scipy_stats.binomtest(3, 15, 0.5).pvalue)
    assert paired.significant() and not mcnemar(a, a).significant()
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(5, 5) == 1.0


def test_bad_counts_are_refused():
    with pytest.raises(ValueError):
        wilson(5, 3)
    with pytest.raises(ValueError):
        mcnemar("10", "1")
    with pytest.raises(ValueError):
        clopper_pearson(1, 2, 0.05, side="both")


def test_sign_test_counts_images_not_outcomes():
    # 3 repetitions (seeds) of 4 images: image 0 a-better twice, image 1 b-better once,
    # image 2 tied with both right, image 3 tied with both wrong
    a = ["1010", "1010", "0010"]
    b = ["0110", "0010", "0010"]
    paired = sign_test(a, b)
    assert (paired.n, paired.only_a, paired.only_b, paired.both) == (4, 1, 1, 1)
    assert paired.p_value == 1.0
    # one repetition: exactly McNemar
    x, y = "1" * 30 + "0" * 10 + "1" * 2, "0" * 30 + "0" * 10 + "1" * 2
    assert sign_test([x], [y]) == mcnemar(x, y)
    # the same 12 discordant outcomes on 4 images (3 seeds each) are 4 pairs, not 12
    many = sign_test(["1111" + "0" * 20] * 3, ["0000" + "0" * 20] * 3)
    assert (many.only_a, many.only_b) == (4, 0)
    assert many.p_value == pytest.approx(scipy_stats.binomtest(0, 4, 0.5).pvalue)
    assert mcnemar("1111" * 3, "0000" * 3).p_value < many.p_value
    with pytest.raises(ValueError):
        sign_test(["10"], ["10", "01"])


def test_holm_adjusts_step_down_in_the_given_order():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []
