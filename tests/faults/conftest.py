from tests.fakes.harness import world

__all__ = ["world"]
