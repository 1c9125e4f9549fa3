"""What a candidate costs and the budgets it is held to: MACs and params (counted),
latency (a lookup table, or measured on this device), the baselines' latencies (timed
together, in interleaved rounds), and the fastest-baseline budget decided once per study."""

from __future__ import annotations

import time
from dataclasses import replace

import optuna

from estimators import LatencyTable, count, measure, measure_many, predict
from results import _claims
from results._claims import claim, holder
from results._search_config import (
    BASELINE_LATENCY,
    BASELINE_REFERENCE,
    Event,
    EventFn,
    SearchConfig,
    SearchError,
    SearchTarget,
)
from search_space import ArchSpec, SearchSpace, baseline_names, get_baseline

#: The study attribute of the worker timing the baselines for a fastest-baseline budget.
BUDGET_CLAIM = "latency-budget-claim"


class Pricing:
    """Costs and budgets of one search. ``config`` is the search's, with a
    fastest-baseline budget replaced by its figure once it is decided."""

    def __init__(
        self,
        config: SearchConfig,
        space: SearchSpace,
        table: LatencyTable | None,
        num_classes: int,
        on_event: EventFn,
    ):
        self.config = config
        self.space = space
        self.table = table
        self.num_classes = num_classes
        self.on_event = on_event
        #: Baseline name -> its latency from the interleaved measurement (timed once).
        self._baseline_latency: dict[str, dict[str, float]] = {}

    def latency(self, spec: ArchSpec) -> dict[str, float]:
        if self.table is not None:
            ms = predict(spec, self.table) / 1000
            return {"latency_ms": ms, "latency_p10_ms": ms, "latency_p90_ms": ms}
        result = measure(spec, self.config.latency)
        return {
            "latency_ms": result.median_us / 1000,
            "latency_p10_ms": result.p10_us / 1000,
            "latency_p90_ms": result.p90_us / 1000,
            "latency_iqr_ratio": result.iqr_ratio,
        }

    @property
    def needs_latency(self) -> bool:
        return (
            self.config.target is SearchTarget.latency
            or self.config.max_latency_ms is not None
            or self.config.max_latency_under_fastest_pct is not None
            or self.table is not None
        )

    def costs(self, spec: ArchSpec, timed: dict[str, float] | None = None) -> dict[str, float]:
        """MACs, params and latency (``timed`` when it was measured already)."""
        report = count(spec)
        values: dict[str, float] = {"macs": report.macs, "params": report.params}
        values["mmacs"] = report.macs / 1e6
        values["mparams"] = report.params / 1e6
        # Check the cheap budgets first: an infeasible candidate is never timed either.
        if timed is not None:
            values.update(timed)
        elif self.needs_latency and not self.violations(values, latency=False):
            values.update(self.latency(spec))
        return values

    @property
    def baseline_resolution(self) -> int:
        return self.config.baseline_resolution or max(self.space.resolutions)

    def time_baselines(self, names: list[str]) -> dict[str, dict[str, float]]:
        """The baselines' latencies at their resolution: from the lookup table, or measured
        together in interleaved rounds with MobileNetV2 timed in every round
        (``BASELINE_LATENCY``, on the search's latency device and threads); each is timed
        once per process."""
        res = self.baseline_resolution
        specs = {n: get_baseline(n, 1.0, res, self.num_classes) for n in names}
        if self.table is not None:
            return {n: self.latency(s) for n, s in specs.items()}
        missing = [n for n in names if n not in self._baseline_latency]
        if missing:
            c = self.config.latency
            protocol = replace(BASELINE_LATENCY, device=c.device, threads=c.threads)
            self.on_event(
                Event(
                    "baseline",
                    f"timing {len(missing)} baseline(s) at {res}x{res}: {protocol.rounds} "
                    f"interleaved rounds, {BASELINE_REFERENCE} timed in every round",
                )
            )
            reference = get_baseline(BASELINE_REFERENCE, 1.0, res, self.num_classes)
            timed = measure_many(
                [specs[n] for n in missing], protocol, reference=reference, names=missing
            )
            for name, r in zip(missing, timed, strict=True):
                self._baseline_latency[name] = {
                    "latency_ms": r.median_us / 1000,
                    "latency_p10_ms": r.p10_us / 1000,
                    "latency_p90_ms": r.p90_us / 1000,
                    "latency_iqr_ratio": r.iqr_ratio,
                    "ratio_to_v2": float(r.ratio_to_reference or 0.0),
                }
        return {n: self._baseline_latency[n] for n in names}

    def resolve_latency_budget(self, study: optuna.Study) -> None:
        """``max_latency_under_fastest_pct``: the budget is that many percent under the
        fastest baseline. Decided once per study and kept in its meta (``nasctl`` ->
        ``latency_budget``, and ``budgets.latency_ms``): a resumed search or another
        worker uses the same figure rather than timing again. Of several workers starting
        together one times the baselines (it claims ``latency-budget-claim``, see
        ``results._claims``); the others wait for its figure."""
        pct = self.config.max_latency_under_fastest_pct
        if pct is None:
            return
        while True:
            meta = dict(study.user_attrs.get("nasctl", {}))
            chosen = meta.get("latency_budget")
            if chosen is not None and chosen.get("percent_under") == pct:
                break
            if not claim(study, [BUDGET_CLAIM]).get(BUDGET_CLAIM):
                # Another live worker times them. An event per look: the view can stop
                # here on Ctrl-C.
                who = holder(study, BUDGET_CLAIM)
                self.on_event(Event("baseline", f"waiting for {who} to time the baselines"))
                time.sleep(_claims.POLL_S)
                continue
            timed = self.time_baselines(list(baseline_names()))
            fastest = min(timed, key=lambda n: timed[n]["latency_ms"])
            ms = timed[fastest]["latency_ms"] * (1 - pct / 100)
            res = self.baseline_resolution
            chosen = {
                "rule": "fastest-baseline" + (f"-{pct:g}%" if pct else ""),
                "percent_under": pct,
                "fastest": fastest,
                "fastest_ms": timed[fastest]["latency_ms"],
                "latency_ms": ms,
                "resolution": res,
                "source": "lut" if self.table is not None else "measured",
                "baselines_ms": {n: timed[n]["latency_ms"] for n in sorted(timed)},
            }
            meta["latency_budget"] = chosen
            meta["budgets"] = {**meta.get("budgets", {}), "latency_ms": ms}
            study.set_user_attr("nasctl", meta)
            break
        self.config = replace(
            self.config,
            max_latency_ms=float(chosen["latency_ms"]),
            max_latency_under_fastest_pct=None,
        )
        under = f" - {pct:g}%" if pct else ""
        self.on_event(
            Event(
                "budget",
                f"latency budget {chosen['latency_ms']:.3f} ms = fastest baseline "
                f"{chosen['fastest']} {chosen['fastest_ms']:.3f} ms{under} (at "
                f"{chosen['resolution']}x{chosen['resolution']}, {chosen['source']})",
            )
        )
        self.check_latency_reachable()

    def violations(self, values: dict[str, float], latency: bool = True) -> dict[str, float]:
        """Budget -> how far over it (> 0) the candidate is."""
        over = {}
        for key, limit in self.config.budgets.items():
            if limit is None or (key == "latency_ms" and not latency) or key not in values:
                continue
            if values[key] > limit:
                over[key] = values[key] - limit
        return over

    def check_budgets_are_reachable(self) -> None:
        """Budgets no architecture of the space can meet are refused up front (the
        smallest architecture is also timed once when there is a latency budget)."""
        report = count(self.smallest_spec())
        for key, value, unit in (
            ("max_mmacs", report.macs / 1e6, "M MACs"),
            ("max_mparams", report.params / 1e6, "M params"),
        ):
            limit = getattr(self.config, key)
            if limit is not None and value > limit:
                flag = key.replace("max_m", "--max-").replace("macs", "flops")
                raise SearchError(
                    f"{flag} {limit:g} cannot be met: the smallest architecture of the space "
                    f"has {value:.3f}{unit}"
                )
        self.check_latency_reachable()

    def smallest_spec(self) -> ArchSpec:
        return self.space.make_spec(
            min(self.space.widths),
            min(self.space.resolutions),
            [
                [min(s.block_choices, key=lambda c: (c.expansion, c.kernel, c.se))] * min(s.depth)
                for s in self.space.stages
            ],
            self.num_classes,
        )

    def check_latency_reachable(self) -> None:
        limit = self.config.max_latency_ms
        if limit is not None:
            # Measured latency is noisy: refuse only a budget under half of what the
            # smallest architecture takes; the lookup table is exact, so no margin there.
            ms = self.latency(self.smallest_spec())["latency_ms"]
            if ms > (limit if self.table is not None else 2 * limit):
                how = "is predicted at" if self.table is not None else "measures"
                raise SearchError(
                    f"--max-latency {limit:g} cannot be met: the smallest architecture of the "
                    f"space {how} {ms:.3f} ms"
                )
