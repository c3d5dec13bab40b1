"""The forecasters; :mod:`forecasting.protocol` registers them."""
