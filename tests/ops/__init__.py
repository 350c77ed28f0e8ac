"""Operations tests: the app as real processes (serve, worker, migrate), crashes, shutdown, scale-out, packaging."""
