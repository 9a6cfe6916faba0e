"""Energy KPIs: tariffs and carbon intensities (:mod:`api.kpi.tariffs`), the figures computed
from 15-minute rollup rows (:mod:`api.kpi.figures`). Pure: no I/O, no web framework."""
