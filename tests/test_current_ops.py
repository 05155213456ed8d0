"""Which Ops new models get: context-local overrides over a process-wide default."""
import threading

from composa import Linear, NumpyOps, Ops, get_current_ops, set_current_ops, use_ops


class MarkedOps(NumpyOps):
    name = "marked"


def test_models_take_the_current_ops_at_construction():
    with use_ops("numpy") as ops:
        assert Linear().ops is ops
    assert isinstance(get_current_ops(), Ops)


def test_use_ops_is_restored_on_exit_and_on_errors():
    before = get_current_ops()
    try:
        with use_ops("numpy"):
            raise RuntimeError
    except RuntimeError:
        pass
    assert get_current_ops() is before


def test_a_new_thread_sees_the_process_default_not_silently_numpy():
    before = get_current_ops()
    marked = MarkedOps()
    seen = {}
    try:
        set_current_ops(marked)
        thread = threading.Thread(target=lambda: seen.update(ops=get_current_ops()))
        thread.start()
        thread.join()
    finally:
        set_current_ops(before)
    assert seen["ops"] is marked


def test_use_ops_in_one_thread_does_not_leak_into_another():
    seen = {}
    inside = threading.Event()
    done = threading.Event()

    def worker():
        with use_ops("numpy") as ops:
            seen["worker"] = ops
            inside.set()
            done.wait(5)

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    seen["main"] = get_current_ops()
    done.set()
    thread.join()
    assert seen["main"] is not seen["worker"]
