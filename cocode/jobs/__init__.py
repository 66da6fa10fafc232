"""Jobs and runs: the agent protocol, submit, dispatch, timeouts, the runner, cleaning, watching."""
