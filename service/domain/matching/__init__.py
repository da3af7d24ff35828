"""Matching referred participants to peer specialists: pure scoring, explanations and batch planning.

``config`` (the data files), ``score`` (constraints, factors, explanations, ranking), ``plan`` (batch
and greedy assignment). The record fields matching reads live in :mod:`service.domain.match_fields`.
"""
