"""First module the pipeline's fork server imports: keeps PyTorch out of the workers.

Importing it makes ``albumentations.pytorch`` fail to import in this process
(:func:`augmine.core.compat.keep_torch_out_of_albumentations`, where the patch, its reason and
the albumentations version it was written for live); the fork server imports this module
before albumentations, and every worker it forks inherits the hook. Nothing else imports
this module: the main process keeps albumentations' normal behaviour.
"""

from __future__ import annotations

from augmine.core.compat import keep_torch_out_of_albumentations

keep_torch_out_of_albumentations()
