"""What a restricted key lets through (`zmake serve`): every check asks ZFS on serve's
own side and fails closed."""
