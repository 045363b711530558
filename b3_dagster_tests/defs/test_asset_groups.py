"""The asset groups a user sees in the UI's *Assets* page (README "Using it" and "Every B3 index ..."): the reshape
split the assets into defs/<concern>/ folders, and a group must not follow the file an asset lives in."""

from b3_dagster.definitions import build_definitions

EXPECTED_GROUPS = {
    "ibov_portfolio": {"ibov_raw_snapshot", "ibov_sector_refined", "tb_ibov_refined"},
    "ibov_index": {"ibov_index_raw", "ibov_index_refined", "ibov_refined", "ibov_index_chart", "ibov_sector_chart"},
    "b3_indices": {"index_history_raw", "index_closes", "index_portfolio_raw", "index_portfolios",
                   "index_membership_raw", "index_membership", "ibov_anomalies", "ibov_anomaly_chart"},
    "b3_sectors": {"classificacao_setorial", "ibov_sector_weights_chart"},
}


def test_every_asset_is_in_the_group_the_readme_names():
    graph = build_definitions().resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert groups == EXPECTED_GROUPS
