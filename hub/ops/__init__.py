"""Operations: consumer lag with a status per group, and the state the dashboard reads."""
