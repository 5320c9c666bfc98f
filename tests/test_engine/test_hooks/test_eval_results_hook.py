"""EvalResultsHook starts each run from an empty history, even in a reused message hub."""
from types import SimpleNamespace

from mmengine.logging import MessageHub

from mmmsf.engine.hooks import EvalResultsHook


def test_a_run_does_not_inherit_the_history_of_a_run_that_shared_its_hub():
    # mmengine names a hub after the config and the start second: two runs of one config
    # started within a second in one process get the same hub
    hub = MessageHub.get_instance('eval_results_hook_test_shared_hub')
    hub.update_info('linear_history', [dict(epoch=15, top1=1.0)])
    hook = EvalResultsHook(kind='linear')
    hook.history = [dict(epoch=15, top1=1.0)]
    hook.before_run(SimpleNamespace(message_hub=hub))
    assert hub.get_info('linear_history') == [] and hook.history == []
    hub.update_info('knn_history', [dict(epoch=3)])  # another kind's history is left alone
    hook.before_run(SimpleNamespace(message_hub=hub))
    assert hub.get_info('knn_history') == [dict(epoch=3)]
