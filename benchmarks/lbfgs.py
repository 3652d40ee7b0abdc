"""optax.lbfgs (with its default zoom linesearch) on an L2-regularized logistic regression (512 samples, 16
features), run as optax's documentation writes it: a lax.while_loop of steps until the gradient's norm falls under
a tolerance or 30 iterations (--quick: 10). The linesearch is a while_loop inside the step, so both trip counts are
data-dependent. The compared figure is the final loss."""
import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

from tinyjax import tiny, to_tinygrad

from .common import Case, normal, rng


def run_lbfgs(fun, init_params, max_iter, tol=1e-6):
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(fun)

  def step(carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
    return optax.apply_updates(params, updates), state

  def continuing(carry):
    count, grad = otu.tree_get(carry[1], "count"), otu.tree_get(carry[1], "grad")
    return (count == 0) | ((count < max_iter) & (otu.tree_l2_norm(grad) >= tol))

  params, state = jax.lax.while_loop(continuing, step, (init_params, opt.init(init_params)))
  return params, otu.tree_get(state, "value")


def logistic_regression(quick):
  r = rng()
  x = normal(r, 512, 16)
  y = (x @ normal(r, 16) + normal(r, 512) > 0).astype("float32") * 2 - 1   # labels +-1, not separable
  def loss(w): return jnp.mean(jnp.logaddexp(0.0, -y * (x @ w))) + 1e-3 * jnp.sum(w * w)
  def solve(w0): return run_lbfgs(loss, w0, max_iter=10 if quick else 30)
  tiny_f, jax_f, w0 = tiny(solve), jax.jit(solve), jnp.zeros(16)
  w0_tg = to_tinygrad(w0)
  return Case(lambda: tiny_f(w0_tg), lambda: jax_f(w0), check=lambda out: out[1],
              size=f"at most {10 if quick else 30} iterations")
