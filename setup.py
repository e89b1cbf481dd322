"""Maps the top-level folders into the ``attestables`` namespace (DESIGN.md §4).

``daemon/`` becomes ``attestables.daemon`` and so on: names such as ``daemon`` or
``shared`` must never be installed as top-level packages.
"""

from setuptools import find_packages, setup

FOLDERS = ("daemon", "tui", "apps", "shared", "cli", "cheri")

package_dir = {}
packages = []
for folder in FOLDERS:
    name = f"attestables.{folder}"
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "attestables.cheri": ["*.c", "runtime/include/*.h", "runtime/src/*.c", "runtime/src/*.h", "examples/*.c",
                              "tests/*.c", "tests/*.h"],
        "attestables.tui": ["*.tcss"],
        "attestables.daemon": ["systemd/*", "rc.d/*", "sandbox/*.c"],
    },
)
