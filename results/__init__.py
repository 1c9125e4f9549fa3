"""What was found: study storage, Pareto front, tables, plots, export."""

__all__: list[str] = []
