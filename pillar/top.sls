base:
  "*": []
