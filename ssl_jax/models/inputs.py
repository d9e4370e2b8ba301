"""How tasks and evaluations feed image encoders: the input range and the variables."""


def model_input(images01_BxHxWxC):
  """What every image model sees: values in [-1, 1]."""
  return images01_BxHxWxC * 2.0 - 1.0


def apply_model(model, params, model_state, x, train: bool):
  """(outputs, new model_state); batch statistics update only when training."""
  variables = {"params": params, **model_state}
  if train and model_state:
    return model.apply(variables, x, train=True, mutable=list(model_state))
  return model.apply(variables, x, train=train), model_state


def split_variables(variables):
  """(params, model_state) of a Flax variables dict."""
  variables = dict(variables)
  return variables.pop("params"), variables
