print("dipc-bench: not written yet")
