import Engine
print("hotpatch-bench")
