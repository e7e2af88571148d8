"""One Screen (or ModalScreen) per module, each with its layout in a `.tcss` beside it."""
