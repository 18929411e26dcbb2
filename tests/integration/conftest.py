"""Markers of the integration tests."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "crash_loop: kills the whole daemon again and again under load (~40 s; "
                   "RELAYD_CRASH_LOOP_KILLS=N runs N kills instead of 20)")
