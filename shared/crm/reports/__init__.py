"""Reports a store looks at (docs/reports.md).

- ``crm.reports.compute``: each report's figures from the workspace's facts (pure).
- ``crm.reports.charts``: each report as a Vega-Lite spec (a pure dict; rendered outside the Lambda layer).
- ``crm.reports.query``: the question checked (name, period, interval), the facts read, the report built.
"""
