"""Which files of a ``<class>/<image>`` folder are images: the extensions read (lower case),
shared by :class:`~mmmsf.datasets.ImageFolder` and the subset lists
(:func:`~mmmsf.datasets.label_subset.make_subset_list`)."""

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
