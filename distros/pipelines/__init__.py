"""Pipeline kinds; importing this package registers them with the engine.

Each module holds the kinds of one concept: the build root, the OS tree, disk images and their
format conversions, archives.  A new module with new kinds is imported here.
"""

from distros.pipelines import archive, build, disk, installers, os_tree, pxe  # noqa: F401
