"""The browser pages' shared base: sign-in, the home page, page access and keyset paging."""
