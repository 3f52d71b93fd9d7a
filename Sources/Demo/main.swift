import Engine
print("hotpatch-demo")
