from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    """Newest first, by id: stable under inserts, and no OFFSET or COUNT over the table."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 200
