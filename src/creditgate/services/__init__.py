"""Use cases. Each public function is one transaction: the domain decides, storage writes."""
