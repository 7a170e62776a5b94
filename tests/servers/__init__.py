"""Real servers started on loopback for tests (see :mod:`tests.servers.vllm_server`)."""
