"""Production topic settings: what `hub topics ensure` creates topics with."""

from __future__ import annotations

import pytest

from hub.topics_config import topic_configs
from schemas import topics


def test_every_topic_gets_a_config_and_no_other_name() -> None:
    assert set(topic_configs(12, 3)) == set(topics.ALL)


def test_stock_levels_are_compacted_and_everything_else_deletes_by_age() -> None:
    configs = topic_configs(12, 3)
    assert configs[topics.STOCK_LEVELS]["cleanup.policy"] == "compact"
    assert "retention.ms" not in configs[topics.STOCK_LEVELS]
    for name in set(topics.ALL) - {topics.STOCK_LEVELS}:
        assert configs[name]["cleanup.policy"] == "delete", name
        assert int(configs[name]["retention.ms"]) > 0, name


def test_dead_letters_are_kept_longer_than_any_event_topic() -> None:
    configs = topic_configs(12, 3)
    dlq = int(configs[topics.DLQ]["retention.ms"])
    others = [
        int(c["retention.ms"])
        for n, c in configs.items()
        if n != topics.DLQ and "retention.ms" in c
    ]
    assert others and dlq > max(others)


@pytest.mark.parametrize("replication", [3, 5])
def test_min_insync_replicas_is_two_with_three_or_more_replicas(replication: int) -> None:
    for name, config in topic_configs(6, replication).items():
        assert config["min.insync.replicas"] == "2", name


@pytest.mark.parametrize("replication", [1, 2])
def test_min_insync_replicas_is_left_to_the_broker_below_three_replicas(replication: int) -> None:
    # With min.insync.replicas=2 on one or two brokers, losing one broker would refuse every write.
    for config in topic_configs(1, replication).values():
        assert "min.insync.replicas" not in config


def test_values_are_strings_as_the_kafka_admin_api_expects() -> None:
    for config in topic_configs(4, 3).values():
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in config.items())


@pytest.mark.parametrize(("partitions", "replication"), [(0, 3), (4, 0), (-1, 1)])
def test_nonsense_sizes_are_refused(partitions: int, replication: int) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        topic_configs(partitions, replication)
