"""The VTmarketing product feed of each channel: built from Saleor (rows with the same item ids the events send),
stored compressed in the database, served at a secret URL, checked against the orders that were sent."""
