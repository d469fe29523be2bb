"""Data contracts: one GX expectation suite per table, named after it, plus custom expectations."""
