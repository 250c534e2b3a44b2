"""The social-networking category list every test policy names (`categories/social.txt`)."""

from __future__ import annotations

import pathlib

# Three sites, two with a second domain, so site groups and plain entries are both exercised.
SOCIAL_LIST = """\
# test list
[facebook.com]
facebook.com
fbcdn.net
[x.com]
x.com
twimg.com
[linkedin.com]
linkedin.com
"""

SOCIAL_LIST_PATH = "categories/social.txt"  # as a policy's domains_files names it


def write_social_list(directory: pathlib.Path) -> pathlib.Path:
    """Write the list to ``directory/categories/social.txt``, next to a policy.yaml there."""
    path = directory / SOCIAL_LIST_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SOCIAL_LIST)
    return path
