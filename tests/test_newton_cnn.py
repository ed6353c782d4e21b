"""NewtonCG on CNN objectives: simpleNN's own trajectory on the worked check."""
import numpy as np
import pytest

from newtoncnn.newton import NewtonCG

from problems import worked_problem

# simpleNN (its own code, double precision), subsample 1, defaults otherwise:
# f after Newton iterations 1, 2, 3 (six significant digits) and the CG iterations.
SIMPLENN_F = [1.44427, 0.782629, 0.69603]
SIMPLENN_CG = [1, 2, 3]


@pytest.mark.parametrize("mode", ["jacobian", "rop"])
def test_first_three_iterations_match_simplenn(mode):
    _, _, obj, theta = worked_problem()
    result = NewtonCG(max_iter=3, subsample=1.0, gn_mode=mode).minimize(obj, theta)
    assert [h["cg_iters"] for h in result.history] == SIMPLENN_CG
    for row, expected in zip(result.history, SIMPLENN_F):
        assert float(f"{row['f']:.6g}") == expected
    assert result.fun == pytest.approx(obj.fun(result.x), rel=1e-12)


def test_both_settings_follow_the_same_trajectory():
    _, _, obj, theta = worked_problem()
    runs = [NewtonCG(max_iter=5, subsample=1.0, gn_mode=m).minimize(obj, theta)
            for m in ("jacobian", "rop")]
    np.testing.assert_allclose(runs[0].x, runs[1].x, rtol=1e-9, atol=1e-12)
    assert [h["cg_iters"] for h in runs[0].history] == [h["cg_iters"] for h in runs[1].history]
