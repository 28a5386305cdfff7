"""Predicted orders, churn and lifetime value (issue 13): buy-till-you-die models fitted per workspace.

- ``crm.predictions.btyd``: the models (BG/NBD, MBG/NBD, Gamma-Gamma) as vectorised numpy/scipy functions.
- ``crm.predictions.summary``: transactions to per-customer frequency, recency, age and mean spend.
- ``crm.predictions.predict``: the pure entry points the adapters and functions call:
  ``fit_workspace(workspace_id, histories, now, settings) -> WorkspaceFit`` and
  ``predict(fit, histories, now) -> dict[profile_id, Prediction]``, where ``histories`` maps a profile id to
  its counted (paid) orders as ``(placed_at, net amount in the reporting currency)`` pairs.
- ``crm.predictions.histories``, ``refresh``, ``inbox``, ``settings``: the models in the product (the
  scheduled fit, the refresh after an order, the settings; docs/predictions-in-product.md).

Nothing is imported here: importing this package must not load numpy or scipy, which only the functions
that fit carry (the science layer); the API imports ``crm.predictions.settings``.
"""
