"""Write-audit-publish: the audits a run passes before its branch becomes `main`."""
