"""Registries fill themselves once, also when several threads ask first (experiments/search.py)."""

import subprocess
import sys
import textwrap

RACE = textwrap.dedent("""
    from concurrent.futures import ThreadPoolExecutor
    from robust_compress.recipe.loader import parse_recipe

    TEXT = '''
    name: r
    model: {spec: builtin:cnn_tiny}
    data: {name: synthetic}
    threat: {norm: linf, eps: 0.1}
    stages:
      - prune: {ratio: 0.5, adversary: {attack: pgd}}
      - quantize: {backend: brevitas}
      - audit: {}
    '''
    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(parse_recipe, TEXT) for _ in range(4)]:
            future.result()
    print("ok")
""")


def test_threads_that_load_recipes_at_once_all_see_the_builtins():
    for _ in range(3):  # a fresh process each time: the registries are still empty
        proc = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-500:]
