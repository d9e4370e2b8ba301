"""One process of the two-process evaluation test (test_liveness.py): train.evaluate over
300 batches with a cross-process reduction in every one, as the train loop runs it."""
import sys

import jax
import jax.numpy as jnp
import numpy as np

process_id, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)

from ssl_jax import parallel, train  # noqa: E402
from ssl_jax.tasks import Task  # noqa: E402

LOCAL_BATCH, WIDTH, BATCHES = 8, 64, 300


def eval_sums(params, model_state, batch):
  return {"sum": jnp.sum(jnp.tanh(batch["x"] @ params["w"])), "count": jnp.float32(batch["x"].shape[0])}


eval_data = [{"x": np.full((LOCAL_BATCH, WIDTH), i % 7, np.float32)} for i in range(BATCHES)]
task = Task(init=None, loss_fn=None, eval_sums=eval_sums, finalize_eval=lambda s: s,
            train_data=None, eval_data=eval_data, unit=("examples", 1))
parallelism = parallel.make("jit")
params = {"w": np.full((WIDTH, WIDTH), 0.01, np.float32)}
parallelism.setup(jax.eval_shape(lambda: params))
state = train.TrainState(step=None, params=parallelism.init(lambda _: params, None),
                         opt_state=None, model_state={}, rng=None)
results = train.evaluate(task, parallelism, parallelism.eval(task.eval_sums), state)
print(f"process {process_id} evaluated {results['count']:.0f} examples", flush=True)
